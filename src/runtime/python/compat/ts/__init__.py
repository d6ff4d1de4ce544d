"""Minimal `ts` alias: the TorchServe names a simple custom handler (without torch) imports."""
