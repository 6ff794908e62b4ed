"""File output: PNG grids, WAV files, and the writers models name for their samples."""

from gflow.io.audio import read_wav, write_wav
from gflow.io.images import make_grid, save_png
from gflow.io.outputs import ImageGrid, OutputWriter, WavFiles

__all__ = ["ImageGrid", "OutputWriter", "WavFiles", "make_grid", "read_wav", "save_png",
           "write_wav"]
