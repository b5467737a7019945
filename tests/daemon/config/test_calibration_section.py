"""The ``[calibration]`` section: the measurement mic and the calibration's levels."""

from configkit import BASE, key_path, refused, with_section

from controlroom.daemon.config import parse_config
from controlroom.daemon.config.model import CalibrationConfig


def test_without_the_section_there_is_no_calibration():
    assert parse_config(BASE).calibration is None


def test_the_mic_alone_takes_the_documented_defaults():
    config = parse_config(with_section("calibration", "mic = 3"))
    assert config.calibration == CalibrationConfig(
        mic=3, mic_dbfs_at_94_db_spl=None, target_spl_db=79.0, noise_dbfs=-20.0, max_boost_db=6.0
    )


def test_every_key_is_read():
    config = parse_config(
        with_section(
            "calibration",
            "mic = 4",
            "mic_dbfs_at_94_db_spl = -23.5",
            "target_spl_db = 83",
            "noise_dbfs = -18.0",
            "max_boost_db = 3",
        )
    )
    assert config.calibration == CalibrationConfig(4, -23.5, 83.0, -18.0, 3.0)


def test_the_mic_input_counts_towards_the_input_channels():
    assert parse_config(with_section("calibration", "mic = 7")).audio.input_channels == 7
    text = "[audio]\ninput_channels = 2\n" + with_section("calibration", "mic = 3")
    [line] = refused(text)
    assert key_path(line) == "calibration.mic" and "above audio.input_channels" in line


def test_every_error_is_reported_with_its_key_path_at_once():
    lines = refused(
        with_section(
            "calibration",
            "mic_dbfs_at_94_db_spl = 3.0",
            "target_spl_db = 200",
            "noise_dbfs = -3",
            "max_boost_db = -1",
            "max_boos_db = 2",
        )
    )
    assert sorted(map(key_path, lines)) == [
        "calibration.max_boos_db",
        "calibration.max_boost_db",
        "calibration.mic",
        "calibration.mic_dbfs_at_94_db_spl",
        "calibration.noise_dbfs",
        "calibration.target_spl_db",
    ]
    assert any("did you mean 'max_boost_db'" in line for line in lines)


def test_a_mic_channel_must_be_a_1_based_channel():
    for bad in ("0", "65", '"3"', "2.5"):
        [line] = refused(with_section("calibration", f"mic = {bad}"))
        assert key_path(line) == "calibration.mic"
