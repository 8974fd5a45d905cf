"""Hot loops. `cpu.pxd` holds typed, inline kernels on raw float buffers (BLAS from
scipy.linalg.cython_blas, column-major like DyNet); GPU kernels go beside it."""
