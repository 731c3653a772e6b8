"""The inference API of ``cove serve``: every model on the hub, served in the shapes the stock clients speak
(the HF Inference API, OpenAI, TGI, TEI).

``router.py`` holds the routes (thin translations), ``hf.py`` / ``openai.py`` / ``chat.py`` / ``tgi.py`` the
protocol adapters onto one internal request type (``engine.TaskJob``; generation: the continuous batcher's
requests, behind ``generation.py``), ``service.py`` the access rules and model resolution, ``engine.py`` the
loaded models, their queues, workers and batching, ``snapshots.py`` model folders built from the hub's
store, ``tasks.py`` which task a model serves, ``metrics.py`` the Prometheus text, ``errors.py`` the
``{"error", "error_type"}`` answers.
"""
