#!/usr/bin/env python3
"""TensorFlow (tf.keras) baseline for `luoshu bench mlp`.

Same model and data as mlp_torch.py: Dense 784-256-256-10 (ReLU),
SparseCategoricalCrossentropy(from_logits=True), SGD(learning_rate=0.01,
momentum=0.9), random standard-normal features / int labels pre-generated
once (--nbatches batches cycled), on the CPU. The training step is a custom
@tf.function (not model.fit) so steps are timed exactly: --warmup untimed
steps (the first one traces), then --steps timed with time.perf_counter.
Prints ONE JSON line on stdout:
  {"framework":"tensorflow","version":..,"samples_per_sec":..,"step_ms":..,
   "intra_threads":N,"interop_threads":N,"blas_threads":..,"final_loss":..}

Threads: --intra / --interop go to tf.config.threading.set_intra_op_ / 
set_inter_op_parallelism_threads before any op runs (0 = TF default).
TF's C++ logging is silenced (TF_CPP_MIN_LOG_LEVEL=2 unless already set).
"""
import os
import time

import baseline_common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, even if a GPU build
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    a = baseline_common.parse(__doc__.splitlines()[0], "TF")

    # Must happen before the runtime is initialised (i.e. before any op).
    tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    tf.config.threading.set_inter_op_parallelism_threads(a.interop)
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(a.seed)

    rng = np.random.default_rng(a.seed)
    xs = [tf.constant(rng.standard_normal((a.batch, 784), dtype=np.float32))
          for _ in range(a.nbatches)]
    ys = [tf.constant(rng.integers(0, 10, a.batch, dtype=np.int32))
          for _ in range(a.nbatches)]

    L = tf.keras.layers
    model = tf.keras.Sequential([tf.keras.Input((784,)),
                                 L.Dense(256, activation="relu"),
                                 L.Dense(256, activation="relu"),
                                 L.Dense(10)])
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = tf.keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    opt.build(model.trainable_variables)  # create slots outside tf.function

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(a.warmup):
        train_step(xs[i % a.nbatches], ys[i % a.nbatches])
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(a.warmup, a.warmup + a.steps):
        loss = train_step(xs[i % a.nbatches], ys[i % a.nbatches])
    final_loss = float(loss.numpy())  # waits for the last step
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds of all threads

    baseline_common.report("tensorflow", tf.__version__, a, dt, cpu,
                           tf.config.threading.get_intra_op_parallelism_threads(),
                           tf.config.threading.get_inter_op_parallelism_threads(), final_loss,
                           ("OMP_NUM_THREADS",))


if __name__ == "__main__":
    main()
