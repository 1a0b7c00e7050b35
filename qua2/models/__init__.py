"""Denoiser adapters: embedded digits models and diffusers families from local directories."""

from qua2.models.registry import FAMILIES, load_model, register_family

__all__ = ["FAMILIES", "load_model", "register_family"]
