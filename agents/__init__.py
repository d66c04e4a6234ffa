"""Agents and their reasoners. Pure functions of their inputs; activities call them."""
