"""The architecture zoo: one byte-level trunk with a pluggable sequence mixer per architecture.

``models.zoo.registry.build(arch, size)`` makes a model; ``models.zoo.model.ZooModel`` serves it
through the ``Model`` protocol (spec ``zoo:ARCH[@CHECKPOINT]``); ``models.zoo.trainer`` trains it.
"""
