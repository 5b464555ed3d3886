"""``tf.distribute`` strategies by name, so training scales out with no code change.

* ``default``: TensorFlow's default strategy (one device, nothing distributed).
* ``mirrored``: :class:`tf.distribute.MirroredStrategy`, synchronous data parallelism over every
  GPU of this machine; without a GPU, over every logical CPU device (one CPU device is the normal
  case; tests split the CPU in two with ``tf.config.set_logical_device_configuration``).
* ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`; the cluster comes from the
  ``TF_CONFIG`` environment variable on every worker (TensorFlow's own convention).

The model is built, compiled and fitted inside ``strategy.scope()`` (see
``pipeline.training.train_model``); the batch size in the config is the global batch, split
across replicas.
"""
from __future__ import annotations

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str = "default"):
    import tensorflow as tf

    name = (name or "default").lower().replace("-", "_")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only: reduce on one device when mirroring over CPUs.
        return tf.distribute.MirroredStrategy(devices=cpus,
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown distribution strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
