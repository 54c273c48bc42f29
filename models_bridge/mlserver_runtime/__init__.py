"""A custom MLServer runtime that serves a Counterpoint TorchScript package over the Open
Inference Protocol (used by the remote-adapter test and as a deployment recipe)."""
