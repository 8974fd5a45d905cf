"""Trainers: DyNet's update rules as fused typed kernels over each parameter's float32 storage."""
