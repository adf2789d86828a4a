"""Issue 14.4: the training script of PyTorch's "Learn the Basics" tutorial (the
"Optimizing Model Parameters" page) runs on minift with ``torch`` replaced by ``minift``,
and prints the same losses and accuracies as PyTorch from the same initial weights.

``SETUP`` and ``TRAINING`` are the tutorial's code, verbatim (the tutorial's datasets come
from torchvision; here ``training_data`` / ``test_data`` are a slice of the bundled
Fashion-MNIST, the same data set). The minift script is the same text with the word
``torch`` replaced by ``minift``, and ``torch.utils.data`` by ``minift.data``.
"""

import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

SETUP = '''
import torch
from torch import nn
from torch.utils.data import DataLoader

train_dataloader = DataLoader(training_data, batch_size=64)
test_dataloader = DataLoader(test_data, batch_size=64)

class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28*28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits

model = NeuralNetwork()
'''

TRAINING = '''
learning_rate = 1e-3
batch_size = 64
epochs = 5

loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

def train_loop(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    # Set the model to training mode - important for batch normalization and dropout layers
    # Unnecessary in this situation but added for best practices
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        # Compute prediction and loss
        pred = model(X)
        loss = loss_fn(pred, y)

        # Backpropagation
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

        if batch % 100 == 0:
            loss, current = loss.item(), batch * batch_size + len(X)
            print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")


def test_loop(dataloader, model, loss_fn):
    # Set the model to evaluation mode - important for batch normalization and dropout layers
    # Unnecessary in this situation but added for best practices
    model.eval()
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    test_loss, correct = 0, 0

    # Evaluating the model with torch.no_grad() ensures that no gradients are computed during test mode
    # also serves to reduce unnecessary gradient computation for tensors with requires_grad=True
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()

    test_loss /= num_batches
    correct /= size
    print(f"Test Error: \\n Accuracy: {(100*correct):>0.1f}%, Avg loss: {test_loss:>8f} \\n")

loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

epochs = 10
for t in range(epochs):
    print(f"Epoch {t+1}\\n-------------------------------")
    train_loop(train_dataloader, model, loss_fn, optimizer)
    test_loop(test_dataloader, model, loss_fn)
print("Done!")
'''


def as_minift(script: str) -> str:
    """The only change: the library's name (and where its DataLoader lives)."""
    return script.replace("torch.utils.data", "minift.data").replace("torch", "minift")


def run(script: str, namespace: dict) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(script, "<learn the basics>", "exec"), namespace)  # noqa: S102 - the tutorial's text
    return out.getvalue()


def numbers(printed: str) -> np.ndarray:
    return np.array([float(n) for n in re.findall(r"-?\d+\.\d+", printed)])


def test_the_learn_the_basics_script_runs_unchanged_and_matches_torch():
    torch = pytest.importorskip("torch")
    import minift.data

    data = minift.data.bundled.load_fashion_mnist_bundled()
    order = np.random.default_rng(0).permutation(len(data.y_train))
    train, test = order[:192], order[192:320]  # 3 + 2 batches of 64: short, every class present
    torch_namespace = {
        "training_data": torch.utils.data.TensorDataset(torch.tensor(data.x_train[train]), torch.tensor(data.y_train[train])),
        "test_data": torch.utils.data.TensorDataset(torch.tensor(data.x_train[test]), torch.tensor(data.y_train[test])),
    }
    minift_namespace = {
        "training_data": minift.data.ArrayDataset(data.x_train[train], data.y_train[train]),
        "test_data": minift.data.ArrayDataset(data.x_train[test], data.y_train[test]),
    }
    run(SETUP, torch_namespace)
    run(as_minift(SETUP), minift_namespace)
    minift_namespace["model"].load_state_dict(torch_namespace["model"].state_dict())

    theirs = run(TRAINING, torch_namespace)
    ours = run(as_minift(TRAINING), minift_namespace)

    assert ours.count("Test Error") == theirs.count("Test Error") == 10
    assert re.sub(r"\d", "#", ours) == re.sub(r"\d", "#", theirs)  # the same lines, same formats
    np.testing.assert_allclose(numbers(ours), numbers(theirs), rtol=0, atol=2e-6)  # printed to 6 decimals
    trained = minift_namespace["model"].state_dict()
    for key, value in torch_namespace["model"].state_dict().items():
        np.testing.assert_allclose(trained[key], value.numpy(), rtol=1e-4, atol=1e-6)


def test_type_casts_as_in_pytorch():
    import minift

    hits = minift.tensor([1, 2, 3]) == minift.tensor([1, 0, 3])
    as_float = hits.type(minift.float)
    assert as_float.dtype == minift.float32 and as_float.sum().item() == 2.0
    assert hits.type() == "minift.bool" and minift.long is minift.int64 and minift.double is minift.float64
