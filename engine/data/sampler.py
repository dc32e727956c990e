"""Length-bucketed batch sampler: batches by total (padded) frames, sharded over ranks, resumable.

Per epoch (seeded by ``seed + epoch``, identical on every rank):
  1. shuffle all indices; cut them into windows of ``sort_window`` items;
  2. sort each window by length and cut it greedily into batches whose padded size
     ``max_len_in_batch * count`` stays within ``max_frames`` (and ``count <= batch_size``);
  3. shuffle the batch order; drop the few trailing batches so every rank gets the same count.
The global batch list is then dealt round-robin: rank r takes batches r, r + W, r + 2W, ...
so W ranks with gradient accumulation A see exactly the batches one process with accumulation
W * A sees, in the same groups (the basis of the "DDP equals one process" guarantee).

An item longer than ``max_frames`` forms a batch of its own; filter such clips out beforehand
if they would not fit in memory.
"""

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths: Sequence[int], max_frames: int | None = None, batch_size: int | None = None,
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 sort_window: int = 1000):
        if max_frames is None and batch_size is None:
            raise ValueError("BucketBatchSampler needs max_frames, batch_size, or both")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("BucketBatchSampler needs a non-empty 1-D sequence of lengths")
        self.max_frames = max_frames
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle, self.sort_window = seed, shuffle, sort_window
        self.epoch, self.start = 0, 0
        if len(self.global_batches(0)) < world_size:
            raise ValueError(f"{len(self.lengths)} items make fewer batches than the {world_size} ranks")

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields this rank's batches of ``epoch`` from position ``start`` on."""
        self.epoch, self.start = epoch, start

    def global_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + epoch)
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        batches = []
        for lo in range(0, len(order), self.sort_window):
            window = order[lo : lo + self.sort_window]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches.extend(self._cut(window))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        usable = len(batches) // self.world_size * self.world_size
        return batches[:usable]

    def _cut(self, sorted_indices: np.ndarray) -> list[list[int]]:
        batches, current, longest = [], [], 0
        for idx in sorted_indices.tolist():
            length = int(self.lengths[idx])
            new_longest = max(longest, length)
            too_many = self.batch_size is not None and len(current) >= self.batch_size
            too_big = self.max_frames is not None and new_longest * (len(current) + 1) > self.max_frames
            if current and (too_many or too_big):
                batches.append(current)
                current, new_longest = [], length
            current.append(idx)
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def __len__(self) -> int:
        return len(self.global_batches(self.epoch)) // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.global_batches(self.epoch)[self.rank :: self.world_size]
        yield from mine[self.start :]


def pad_sequences(seqs: Sequence[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, ...) tensors into (B, L_max, ...) and a bool mask (B, L_max), True at real steps."""
    lengths = torch.tensor([len(s) for s in seqs])
    out = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True, padding_value=value)
    mask = torch.arange(out.shape[1])[None] < lengths[:, None]
    return out, mask


def crop_start(total: int, length: int, randomly: bool) -> int:
    """Where a crop of ``length`` frames starts in a clip of ``total``: uniformly at random (torch's RNG,
    which DataLoader seeds per worker and the trainer restores on resume) or at 0."""
    if total <= length or not randomly:
        return 0
    return int(torch.randint(total - length + 1, ()))
