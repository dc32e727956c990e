from engine.data.manifest import ManifestError, read_manifest, resolve_path, write_manifest
from engine.data.sampler import BucketBatchSampler, crop_start, pad_sequences

__all__ = ["BucketBatchSampler", "ManifestError", "crop_start", "pad_sequences", "read_manifest", "resolve_path",
           "write_manifest"]
