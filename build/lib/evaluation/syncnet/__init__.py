"""SyncNet v2 and the LSE-C / LSE-D (Sync-C / Sync-D) lip-sync scores."""

from evaluation.syncnet.mfcc import mfcc, pcm16_scale
from evaluation.syncnet.model import SyncNet, SyncNetConfig
from evaluation.syncnet.scorer import SyncInputError, SyncScorer, sync_distances, sync_scores
from evaluation.syncnet.weights import load_syncnet, read_syncnet_state

__all__ = ["SyncNet", "SyncNetConfig", "SyncScorer", "SyncInputError", "load_syncnet", "read_syncnet_state", "mfcc",
           "pcm16_scale", "sync_distances", "sync_scores"]
