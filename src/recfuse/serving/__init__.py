"""Serving trained recommenders over HTTP: ``recfuse serve RUN_FOLDER``.

* :mod:`~recfuse.models.runfolder`: what a servable run folder holds, written by ``recfuse train --out``;
* :mod:`~recfuse.serving.engine`: a loaded model's scores for known users, new users folded in from their
  items, similar items, and new items through a feature or text tower;
* :mod:`~recfuse.serving.state`: the model, the id vocabularies and the feedback log behind one lock;
* :mod:`~recfuse.serving.rerank`: Llama4Rec's LLM re-ranking of the top k' under a latency budget;
* :mod:`~recfuse.serving.app`: the FastAPI application (FastAPI and uvicorn are imported only there).

The package sits between the runner and the commands: it may use the methods' own functions (Llama4Rec's
prompts and aggregation), and only the command line imports it.
"""
