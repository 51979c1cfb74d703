"""An MLP on scikit-learn's bundled 8x8 digits that reports its validation loss every epoch.

Each epoch is one ``partial_fit`` pass; after it the program prints
``{"step": epoch, "val_loss": ..., "val_accuracy": ...}``, which ``carbs run``
reads live (the last line is the result). Runs on its own too:

    python train.py --width 64 --epochs 20 --batch-size 64 --lr 0.001 --weight-decay 0.0001
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def parse_args() -> argparse.Namespace:
    """Command-line hyperparameters."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--width", type=int, default=64, help="hidden units")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    """Train epoch by epoch, printing one JSON line per epoch."""
    args = parse_args()
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)
    model = MLPClassifier(
        hidden_layer_sizes=(args.width,),
        solver="adam",
        learning_rate_init=args.lr,
        alpha=args.weight_decay,
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train[order], y_train[order], classes=classes)
        proba = np.clip(model.predict_proba(x_val), 1e-7, 1.0)
        proba /= proba.sum(axis=1, keepdims=True)
        print(json.dumps({
            "step": epoch,
            "val_loss": float(log_loss(y_val, proba, labels=classes)),
            "val_accuracy": float(accuracy_score(y_val, classes[proba.argmax(axis=1)])),
        }), flush=True)


if __name__ == "__main__":
    main()
