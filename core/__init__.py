"""AI Portrait core: host-agnostic portrait operators (torch), imaging, model store and the operator registry.

Hosts (GIMP, Krita) never import this package; they reach it through the worker bridge in `plugin/`.
"""
__version__ = "0.1.0"
