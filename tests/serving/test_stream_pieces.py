"""The streamed audio of a delayed layout (``model.delay > 0``): its last steps carry motion only (speech None);
they add no audio and keep their motion, and the audio is the speech patches' streaming decode."""

import asyncio
from types import SimpleNamespace

import numpy as np
import torch

from avcodecs.streaming import StreamingDecoder
from serving.batcher import Job
from serving.routes_speech import audio_pieces
from talker_t2av.generate import Codecs


def test_motion_only_patches_add_no_audio_and_keep_their_motion():
    codecs = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                    liax_config="lia_x_tiny", device="cpu")
    talker = SimpleNamespace(generator=SimpleNamespace(codecs=codecs))
    g = torch.Generator().manual_seed(0)
    speech = [torch.randn(4, 32, generator=g) for _ in range(3)]
    motion = [torch.randn(4, 40, generator=g) for _ in range(3)]
    # delay 1: step k passes speech patch k and motion patch k - 1; the last step motion only
    events = [("patch", speech[0], None), ("patch", speech[1], motion[0]), ("patch", speech[2], motion[1]),
              ("patch", None, motion[2]), ("done", object())]

    async def stream():
        job = Job(payload=None, key=0, future=asyncio.get_running_loop().create_future(), events=asyncio.Queue())
        for event in events[1:]:
            job.events.put_nowait(event)
        motions = []
        audio = [samples async for samples in audio_pieces(talker, job, events[0], None, motions)]
        return np.concatenate(audio), motions

    audio, motions = asyncio.run(stream())
    decoder = StreamingDecoder(codecs.vae)
    expected = np.concatenate([decoder.push(s) for s in speech] + [decoder.flush()])
    np.testing.assert_array_equal(audio, expected)
    assert len(motions) == 3 and all(m is w for m, w in zip(motions, motion))
