"""Train a small MLP on scikit-learn's bundled 8x8 digits and report the validation loss.

Run by ``carbs run sweep.yaml``; also runs on its own:

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
    """Train, evaluate, and print one JSON line with the results."""
    args = parse_args()
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    model = MLPClassifier(
        hidden_layer_sizes=(args.width,),
        solver="adam",
        learning_rate_init=args.lr,
        alpha=args.weight_decay,
        batch_size=args.batch_size,
        max_iter=args.epochs,
        random_state=args.seed,
    )
    with warnings.catch_warnings():
        # Few epochs are part of the search: stopping before convergence is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(x_train), y_train)
    proba = np.clip(model.predict_proba(scaler.transform(x_val)), 1e-7, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    result = {
        "val_loss": float(log_loss(y_val, proba, labels=model.classes_)),
        "val_accuracy": float(accuracy_score(y_val, model.classes_[proba.argmax(axis=1)])),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
