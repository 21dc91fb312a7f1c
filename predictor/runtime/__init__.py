"""Running the model: which runtime, how fast, and what a load decided.

runtimes.py         OpenVINO or TensorFlow behind one call, checked against Keras's values
base.py             the `Runtime` protocol, `ModelFileError`, `first_line`: what they all share
loading.py          a load in steps: the entry's key, warm from the cache, or cold (decide in a
                    child process, or here: decide, keep, free)
deciding.py         the cold load's decision: the runtime, then the precision, then the batch size
decisions.py        `Decisions`: what a load decided, as the cache keeps it and the server reads it
measure.py          images per second with parallel callers; the best batch size
compiled_cache.py   the decisions and compiled models kept under MODEL_CACHE_DIR
cache_key.py        an entry's key: the model, the options, the CPU, the software, the deciding code
model_file.py       a `.keras` archive checked before Keras opens it
cpus.py             the CPUs this container may use (its cgroup quota)
"""
