"""One worker of a two-worker run on 127.0.0.1 (started twice by test_multi_worker.py, through
`tests/subprocess_checks.py`).

    python -m tests.distribute.multi_worker_run INDEX PORT0 PORT1 WORKDIR MODE

MODE "run": train_and_evaluate of the tiny quickstart config under multi_worker.
MODE "die": the same run, but worker 1 kills itself (SIGKILL) as the student's second epoch
begins, after both workers have backed up the first; worker 0 must then fail with a clear error.
MODE "canary": a plain fit under MultiWorkerMirroredStrategy with the workaround switched off;
prints UPSTREAM_STILL_BROKEN when Keras fails as it does in 3.15 (keras-team/keras#20585).
"""

import json
import os
import sys

index, port0, port1, workdir, mode = sys.argv[1:6]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
        "task": {"type": "worker", "index": int(index)},
    }
)

if mode == "canary":
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import numpy as np

    from iekd_keras import CoupledWeightDecaySGD, StandaloneTrainer
    from tests.distillers.tiny_models import tiny_backbone

    with strategy.scope():
        trainer = StandaloneTrainer(tiny_backbone())
        trainer.multi_worker_workaround = False
        trainer.compile(optimizer=CoupledWeightDecaySGD(0.05))
    images = np.zeros((16, 8, 8, 3), "float32")
    labels = np.zeros(16, "int32")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    try:
        trainer.fit(dataset, epochs=1, verbose=0)
        print("UPSTREAM_FIXED")
    except ValueError as error:
        print("UPSTREAM_STILL_BROKEN", str(error)[:200].replace("\n", " "))
else:
    from iekd_keras.experiment import train as train_module
    from iekd_keras.experiment.train import train_and_evaluate
    from tests.experiment.test_train_and_evaluate import tiny_config

    config = tiny_config()
    config.distribution = "multi_worker"
    config.student.epochs = 2
    config.baseline = False
    if mode == "die" and index == "1":
        import signal

        class DyingThroughputLogger(train_module.ThroughputLogger):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1 and type(self.model).__name__ == "Distiller":
                    print("DYING", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                super().on_epoch_begin(epoch, logs)

        train_module.ThroughputLogger = DyingThroughputLogger
    train_and_evaluate(config, workdir)
    print("FINISHED")
