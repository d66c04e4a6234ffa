"""Rego policies and the in-process engine (regopy) that evaluates them."""
