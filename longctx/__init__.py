"""longctx: the long-context evaluation suite.

Four parts, one import direction (``tasks`` <- ``evals`` -> ``models`` -> ``kernels``):

- ``longctx.tasks``: RULER, MRCR, MQAR and recall-decay generators, token-exact for any tokenizer;
- ``longctx.models``: the ``Model`` protocol, adapters (hf, openai, vllm, lm-eval) and the zoo;
- ``longctx.kernels``: Triton kernels, each beside a plain PyTorch reference;
- ``longctx.evals``: the runner, scoring, plots, leaderboards and the ``evals`` command.

They sit in one package because their bare names are taken: Hugging Face's ``kernels`` (which
transformers requires) and OpenAI's ``evals`` would shadow or be shadowed by ours.
"""
