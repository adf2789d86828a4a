"""The CuPy GPU kernels: ``backend.py`` implements the kernel contract (``minift.contract``)
with the CUDA C of ``*.cu``; ``launch.py`` (plain Python, no CuPy needed) sizes the launches."""
