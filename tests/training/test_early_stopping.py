from mdaf_tf.training.early_stopping import EarlyStopping


def run(values, patience=3):
    stopper = EarlyStopping(patience=patience)
    improved = []
    for epoch, value in enumerate(values, start=1):
        improved.append(stopper.update(epoch, value))
        if stopper.stopped:
            break
    return stopper, improved


def test_stops_after_patience_epochs_without_improvement():
    stopper, improved = run([0.60, 0.70, 0.69, 0.70, 0.65, 0.90])
    # 0.70 at epoch 4 equals the best: not an improvement; stop at epoch 5.
    assert improved == [True, True, False, False, False]
    assert stopper.stopped and stopper.best_epoch == 2 and stopper.best_value == 0.70


def test_improvement_resets_the_wait():
    stopper, improved = run([0.6, 0.5, 0.5, 0.7, 0.6, 0.6])
    assert not stopper.stopped and stopper.best_epoch == 4 and stopper.wait == 2


def test_nan_never_improves():
    stopper, _ = run([float("nan"), 0.5])
    assert stopper.best_epoch == 2


def test_state_round_trip():
    stopper, _ = run([0.6, 0.7, 0.65])
    clone = EarlyStopping.from_state(stopper.state())
    assert clone == stopper
