"""Running the model: which runtime, how fast, and what a load decided.

runtimes.py         OpenVINO or TensorFlow behind one call, checked against Keras's values
loading.py          a load in steps: warm from the cache, or cold (decide, reduce, save)
measure.py          images per second with parallel callers; the best batch size
compiled_cache.py   the decisions and compiled models kept under MODEL_CACHE_DIR
model_file.py       a `.keras` archive checked before Keras opens it
cpus.py             the CPUs this container may use (its cgroup quota)
"""
