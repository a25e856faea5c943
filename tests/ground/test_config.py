from segstudio.config import Arch, DataConfig, Loss, Schedule, TrainConfig, default_lrs


def test_json_round_trip_keeps_every_field():
    cfg = TrainConfig(data=DataConfig(images="/a", masks="/b", valid_pct=0.3, window="lung"), arch=Arch.resnet50,
                      pretrained=False, size=96, lr_lo=1e-4, lr_hi=2e-3, schedule=Schedule.fine_tune,
                      loss=Loss.ce_dice, epochs=3)
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg and isinstance(back.arch, Arch) and isinstance(back.data, DataConfig)


def test_unknown_keys_from_other_versions_are_ignored():
    cfg = TrainConfig.from_dict({"epochs": 2, "future_option": 1, "data": {"images": "x", "later": 2}})
    assert cfg.epochs == 2 and cfg.data.images == "x"


def test_default_lrs_depend_on_the_encoder():
    assert default_lrs(True)[0] < default_lrs(True)[1] / 10
    assert default_lrs(False)[0] == default_lrs(False)[1]
    assert TrainConfig(pretrained=True).lrs(encoder_pretrained=False) == default_lrs(False)
    assert TrainConfig(lr_hi=1e-4).lrs(encoder_pretrained=True) == (1e-5, 1e-4)
    assert TrainConfig(lr_hi=1e-6).lrs(encoder_pretrained=True) == (1e-6, 1e-6)
