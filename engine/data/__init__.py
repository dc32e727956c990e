from engine.data.manifest import ManifestError, read_manifest, resolve_path, write_manifest
from engine.data.sampler import BucketBatchSampler, pad_sequences

__all__ = ["BucketBatchSampler", "ManifestError", "pad_sequences", "read_manifest", "resolve_path",
           "write_manifest"]
