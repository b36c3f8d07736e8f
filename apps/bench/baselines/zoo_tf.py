#!/usr/bin/env python3
"""TensorFlow baseline for `luoshu bench zoo` (and `luoshu bench mlp`).

  zoo_tf.py --model {mlp,cnn,lstm,dlrm} [--steps S] [--warmup W]
            [--batch B] [--intra N] [--interop N]

The models of baseline_common.MODELS in tf.keras layers, trained by a custom
@tf.function step (GradientTape, then the optimizer), not model.fit, so steps
are timed exactly: --warmup untimed steps (the first one traces), then
--steps timed with time.perf_counter. The CNN runs channels-last (NHWC, TF's
fast CPU layout; the same arithmetic as NCHW). The DLRM's embedding gradient
stays sparse (tf.IndexedSlices) and is applied by TF's sparse Adagrad kernel
(ResourceSparseApplyAdagradV2, only the looked-up rows; Keras 3's Adagrad
would densify it); the MLP uses Keras's Adagrad. Prints ONE JSON line (baseline_common.report).

Threads: --intra / --interop go to tf.config.threading before any op runs
(0 = TF default). TF's C++ logging is silenced.
"""
import os
import time

import baseline_common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, even if a GPU build
import tensorflow as tf  # noqa: E402


def build(name, m):
    """(model, loss_fn(outputs, y), inputs(batch) -> model input)"""
    L = tf.keras.layers
    if name == "mlp":
        model = tf.keras.Sequential([tf.keras.Input((m["input"],))] +
                                    [L.Dense(w, activation="relu") for w in m["hidden"]] +
                                    [L.Dense(m["classes"])])
    elif name == "cnn":
        c = m["channels"]
        model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)),
                                     L.Conv2D(c[0], 5, padding="same", activation="relu"),
                                     L.MaxPooling2D(2),
                                     L.Conv2D(c[1], 5, padding="same", activation="relu"),
                                     L.MaxPooling2D(2), L.Flatten(),
                                     L.Dense(m["fc"], activation="relu"), L.Dense(m["classes"])])
    elif name == "lstm":
        model = tf.keras.Sequential([tf.keras.Input((m["seq"], m["input"])),
                                     L.LSTM(m["hidden"]),  # returns the last step
                                     L.Dense(m["classes"])])
    else:
        # The table is a plain tf.Variable read by tf.nn.embedding_lookup, so
        # its gradient is a tf.IndexedSlices applied by the sparse kernel below.
        table = tf.Variable(tf.random.uniform((m["rows"], m["dim"]), -0.05, 0.05), name="emb")
        emb = tf.keras.Input((m["fields"] * m["dim"],))
        dense = tf.keras.Input((m["dense"],))
        h = L.Concatenate()([emb, dense])
        for w in m["hidden"]:
            h = L.Dense(w, activation="relu")(h)
        mlp = tf.keras.Model([emb, dense], L.Reshape(())(L.Dense(1)(h)))

        def model(x, training):
            e = tf.reshape(tf.nn.embedding_lookup(table, x[0]), (-1, m["fields"] * m["dim"]))
            return mlp([e, x[1]], training=training)
        model.table, model.mlp = table, mlp
    if name == "dlrm":
        loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, loss_fn


def main():
    a = baseline_common.parse(__doc__.splitlines()[0], "TF")
    # Must happen before the runtime is initialised (i.e. before any op).
    tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    tf.config.threading.set_inter_op_parallelism_threads(a.interop)
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(a.seed)
    m = baseline_common.MODELS[a.model]

    batches = []
    for b in baseline_common.batches(a):
        if a.model == "dlrm":
            batches.append(((tf.constant(b["ids"]), tf.constant(b["dense"])), tf.constant(b["y"])))
        elif a.model == "cnn":  # NCHW -> NHWC
            batches.append((tf.constant(b["x"].transpose(0, 2, 3, 1)), tf.constant(b["y"])))
        else:
            batches.append((tf.constant(b["x"]), tf.constant(b["y"])))
    model, loss_fn = build(a.model, m)
    if a.model == "dlrm":
        # Adagrad: Keras for the MLP; the table through TF's sparse Adagrad
        # kernel on the touched rows (duplicate ids summed first, as TF's
        # optimizers do), accumulators starting at 0 like the others'.
        table, variables = model.table, model.mlp.trainable_variables
        acc = tf.Variable(tf.zeros_like(table))
        opt = tf.keras.optimizers.Adagrad(learning_rate=m["lr"], initial_accumulator_value=0.0)
        opt.build(variables)

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, [table] + variables)
            g = grads[0]
            rows, pos = tf.unique(g.indices)
            values = tf.math.unsorted_segment_sum(g.values, pos, tf.size(rows))
            tf.raw_ops.ResourceSparseApplyAdagradV2(var=table.handle, accum=acc.handle, lr=m["lr"],
                                                    epsilon=1e-10, grad=values, indices=rows)
            opt.apply_gradients(zip(grads[1:], variables))
            return loss
    else:
        variables = model.trainable_variables
        opt = tf.keras.optimizers.SGD(learning_rate=m["lr"], momentum=m["momentum"])
        opt.build(variables)  # create slots outside tf.function

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

    for i in range(a.warmup):
        train_step(*batches[i % a.nbatches])
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(a.warmup, a.warmup + a.steps):
        loss = train_step(*batches[i % a.nbatches])
    final_loss = float(loss.numpy())  # waits for the last step
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds of all threads

    baseline_common.report("tensorflow", tf.__version__, a, dt, cpu,
                           tf.config.threading.get_intra_op_parallelism_threads(),
                           tf.config.threading.get_inter_op_parallelism_threads(), final_loss,
                           ("OMP_NUM_THREADS",))


if __name__ == "__main__":
    main()
