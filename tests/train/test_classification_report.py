"""The scoring path's per-class figures: precision and recall against scikit-learn, pairs and mistakes by brute force."""

import torch
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from cnnlab.train.tasks import Classification
from cnnlab.train.tasks.classification import MISTAKES_KEPT


def test_precision_recall_pairs_and_mistakes_match_independent_references() -> None:
    generator = torch.Generator().manual_seed(0)
    classes = tuple("abcde")
    logits = torch.randn(300, 5, generator=generator) * 2
    labels = torch.randint(0, 5, (300,), generator=generator)
    logits[torch.arange(300), labels] += 1.5  # better than chance, far from perfect
    tally = Classification(5).tally(torch.device("cpu"))
    for chunk_logits, chunk_labels in zip(logits.split(64), labels.split(64), strict=True):  # several batches
        tally.add(chunk_logits, chunk_labels)
    report = tally.report(classes)
    predicted = logits.argmax(1).numpy()
    truth = labels.numpy()
    precision = precision_score(truth, predicted, average=None, zero_division=0)
    recall = recall_score(truth, predicted, average=None, zero_division=0)
    for index, name in enumerate(classes):
        assert abs(report["per_class_precision"][name] - precision[index]) < 1e-6
        assert abs(report["per_class_accuracy"][name] - recall[index]) < 1e-6
    matrix = confusion_matrix(truth, predicted)
    assert report["confusion_matrix"] == matrix.tolist()
    off = [(int(matrix[t, p]), t, p) for t in range(5) for p in range(5) if t != p and matrix[t, p]]
    top = sorted(off, key=lambda item: -item[0])[:10]
    assert [pair["count"] for pair in report["most_confused"]] == [count for count, _, _ in top]
    assert all(matrix[classes.index(p["true"]), classes.index(p["predicted"])] == p["count"] for p in report["most_confused"])
    confidence = logits.softmax(1).amax(1)
    wrong = [(float(confidence[i]), i) for i in range(300) if predicted[i] != truth[i]]
    expected = sorted(wrong, reverse=True)[:MISTAKES_KEPT]
    got = report["worst_mistakes"]
    assert [m["index"] for m in got] == [i for _, i in expected]
    assert all(abs(m["confidence"] - c) < 1e-5 for m, (c, _) in zip(got, expected, strict=True))
    assert all(m["true"] == classes[truth[m["index"]]] and m["predicted"] == classes[predicted[m["index"]]] for m in got)


def test_a_perfect_model_lists_no_mistakes_and_no_pairs() -> None:
    tally = Classification(3).tally(torch.device("cpu"))
    labels = torch.tensor([0, 1, 2, 1])
    tally.add(torch.nn.functional.one_hot(labels, 3).float() * 5, labels)
    report = tally.report(("x", "y", "z"))
    assert report["worst_mistakes"] == [] and report["most_confused"] == []
    assert report["per_class_precision"] == {"x": 1.0, "y": 1.0, "z": 1.0}
