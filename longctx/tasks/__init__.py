"""Task generators: the RULER catalog, MRCR and recall-vs-distance decay probes, sized to any tokenizer.

Imports nothing else of the project. Entry points: ``tasks.registry`` (names, groups),
``tasks.cache.generate_samples`` (cached generation), ``tasks.tokenizers.load_tokenizer``.
"""
