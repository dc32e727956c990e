"""Talker-T2AV: a Qwen3 backbone over 4-frame patches with OT-CFM speech and motion heads
(T2AV, A2V, V2A, TTS). See docs/talker_t2av.md."""
