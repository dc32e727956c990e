"""The server's settings: one dataclass, each default stated once (``infer.py serve`` flags lay over it)."""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # loopback: binding elsewhere is the user's explicit choice
    port: int = field(default=8000, metadata={"min": 0})  # 0: any free port
    # requests that arrive within max_wait_ms of the first waiting one are generated as one batch
    max_batch: int = field(default=8, metadata={"min": 1})  # most requests in one batch
    max_wait_ms: float = field(default=20.0, metadata={"min": 0})  # how long a batch waits to fill
    max_upload_mb: float = field(default=50.0, metadata={"above": 0})  # largest request body
    max_clip_seconds: float = field(default=30.0, metadata={"above": 0})  # longest uploaded clip or recording
    max_text_chars: int = field(default=1000, metadata={"min": 1})  # longest text to speak
    max_jobs: int = field(default=64, metadata={"min": 1})  # generation requests in flight; more get a 429
    max_output_seconds: float = field(default=30.0, metadata={"above": 0})  # longest generated speech
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0  # every batch's sampler noise starts from this seed
    hicodit: str | None = None  # a HiCoDiT run or checkpoint folder
    talker: str | None = None  # "released" (or a registry name / hf:// spec) or a Talker run folder
    voices: dict[str, str] = field(default_factory=dict)  # name -> reference recording, registered at start-up
    work_dir: Path = Path("serve_work")  # uploads, registered voices and finished files; nothing is written elsewhere
    files_keep_seconds: float = 600.0  # how long a finished file stays downloadable from /v1/files/{id}

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
