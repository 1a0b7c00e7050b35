"""Denoiser adapters: embedded digits models and diffusers families from local directories."""

from qua2.models.registry import FAMILIES, FamilySpec, get_family, load_model, register_family

__all__ = ["FAMILIES", "FamilySpec", "get_family", "load_model", "register_family"]
