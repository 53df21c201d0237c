"""The model zoo, built only from cnnlab.nn blocks; importing it registers every family."""

# Importing a family file registers its variants.
from cnnlab.models import (  # noqa: F401
    alexnet,
    allconv,
    baseline,
    centernet,
    cifar_resnet,
    convnext,
    course,
    densenet,
    efficientnet,
    highway,
    inception,
    lenet,
    mobilenet,
    nin,
    resnet,
    small,
    speed,
    unet,
    vgg,
    xception,
    yolo,
)
from cnnlab.models.base import AuxOutput, Classifier, FeatureInfo, feature_info
from cnnlab.models.registry import (
    ModelInfo,
    create_model,
    is_detector,
    list_models,
    model_info,
    register_model,
)
from cnnlab.models.transfer import load_torchvision_state_dict

__all__ = [
    "AuxOutput",
    "FeatureInfo",
    "feature_info",
    "Classifier",
    "ModelInfo",
    "create_model",
    "is_detector",
    "list_models",
    "load_torchvision_state_dict",
    "model_info",
    "register_model",
]
