"""TAO's sample modifier: filter, duplicate and cap training frames (reference §10).

Applied by dataset_convert to frames of training folds only (every fold is a training fold
when no validation fold is given). Class names are the TFRecord (lower-cased) source names,
mapped through ``source_to_target_class_mapping``; unmapped classes are ignored. TF-free.
"""

from collections import Counter

from tao_qat.common.errors import SpecError, UsageError


class SampleModifier:
    """Filter / duplicate / cap frames of training folds.

    Args:
        filter_samples_containing_only: target classes; a frame whose mapped classes are all
            one of these (exactly one distinct class) is dropped.
        dominant_target_classes: target classes counted as dominant for duplication.
        minimum_target_class_imbalance: {target class: ratio}, default 1.0 per class; a frame
            is duplicated when count(rare) > count(dominant) * ratio[rare] for some
            non-dominant class present and some dominant class.
        num_duplicates: extra copies appended to a frame that meets the rule.
        max_training_samples: cap on written training samples (0 = none), shared equally:
            ``max // (num_folds - 1)`` per fold with a validation fold, ``max // num_folds``
            without.
        source_to_target_class_mapping: {source class: target class}.
        validation_fold: fold left unmodified (None: all folds are modified).
        num_folds: number of partitions.
    """

    def __init__(
        self,
        filter_samples_containing_only=(),
        dominant_target_classes=(),
        minimum_target_class_imbalance=None,
        num_duplicates=0,
        max_training_samples=0,
        source_to_target_class_mapping=None,
        validation_fold=None,
        num_folds=1,
    ):
        self.filter_only = set(filter_samples_containing_only)
        self.dominant = list(dominant_target_classes)
        self.imbalance = dict(minimum_target_class_imbalance or {})
        self.num_duplicates = int(num_duplicates)
        self.mapping = dict(source_to_target_class_mapping or {})
        self.validation_fold = validation_fold
        targets = set(self.mapping.values())
        field = "sample_modifier_config"
        for name, classes in (
            ("dominant_target_classes", self.dominant),
            ("filter_samples_containing_only", self.filter_only),
        ):
            unknown = sorted(set(classes) - targets)
            if unknown:
                raise SpecError(
                    f"{field}.{name}: {unknown} not among the targets of "
                    f"{field}.source_to_target_class_mapping ({sorted(targets)})"
                )
        num_folds = max(int(num_folds), 1)
        self.sample_counts = Counter()
        self.max_per_fold = 0
        if max_training_samples > 0:
            training_folds = num_folds - 1 if validation_fold is not None else num_folds
            if training_folds < 1:
                raise UsageError(
                    f"{field}.max_training_samples: no training fold left with "
                    f"--validation_fold {validation_fold} and {num_folds} partition(s)"
                )
            self.max_per_fold = max_training_samples // training_folds

    @classmethod
    def from_spec(cls, sample_modifier_config, validation_fold, num_folds):
        """Build from a ``DatasetExportConfig.SampleModifierConfig`` message."""
        c = sample_modifier_config
        return cls(
            filter_samples_containing_only=list(c.filter_samples_containing_only),
            dominant_target_classes=list(c.dominant_target_classes),
            minimum_target_class_imbalance=dict(c.minimum_target_class_imbalance),
            num_duplicates=c.num_duplicates,
            max_training_samples=c.max_training_samples,
            source_to_target_class_mapping=dict(c.source_to_target_class_mapping),
            validation_fold=validation_fold,
            num_folds=num_folds,
        )

    @property
    def is_active(self):
        """True if the modifier can change anything."""
        return bool(
            self.filter_only or (self.dominant and self.num_duplicates) or self.max_per_fold
        )

    def _targets(self, frame):
        mapped = (self.mapping.get(obj.class_name) for obj in frame.objects)
        return [name for name in mapped if name is not None]

    def modify(self, frame, fold):
        """Return the list of frames to write for ``frame`` of partition ``fold``."""
        if self.validation_fold is not None and fold == self.validation_fold:
            return [frame]
        targets = self._targets(frame)
        if self.filter_only and len(set(targets)) == 1 and targets[0] in self.filter_only:
            frames = []
        else:
            frames = [frame]
            if self.dominant and targets and self._imbalanced(Counter(targets)):
                frames += [frame] * self.num_duplicates
        if self.max_per_fold > 0:
            frames = frames[: max(self.max_per_fold - self.sample_counts[fold], 0)]
            self.sample_counts[fold] += len(frames)
        return frames

    def _imbalanced(self, counts):
        rare = [name for name in counts if name not in self.dominant]
        return any(
            counts[r] > counts[d] * self.imbalance.get(r, 1.0) for r in rare for d in self.dominant
        )
