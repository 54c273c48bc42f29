"""Builders for import tests (manifests, PNGs, snapshots), generated in tmp_path."""
