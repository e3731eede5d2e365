import numpy as np

from ehrbackdoor.data.schema import Kind, mimic3_schema, physionet2012_schema, round_to_precision


def test_mimic3_schema_matches_benchmark_config():
    s = mimic3_schema()
    assert len(s) == 17
    assert s.variables[0].name == "Capillary refill rate"
    eye = s.variables[s.index("Glascow coma scale eye opening")]
    assert eye.kind is Kind.ORDINAL and eye.levels == (1.0, 2.0, 3.0, 4.0)
    assert eye.aliases["Spontaneously"] == 4 and eye.aliases["4 Spontaneously"] == 4
    assert eye.benchmark_values[0] == "To Pain"  # the file's (non-clinical) order is kept
    assert s.variables[s.index("GCS_total")].levels == tuple(float(i) for i in range(3, 16))
    assert s.variables[s.index("GCS_motor")].levels == tuple(float(i) for i in range(1, 7))
    assert s.variables[s.index("GCS_verbal")].levels == tuple(float(i) for i in range(1, 6))
    assert s.variables[s.index("Heart Rate")].normal == 86.0
    # one-hot width of the benchmark layout: 59 value columns
    width = sum(len(v.benchmark_values) if v.is_categorical else 1 for v in s.variables)
    assert width == 59


def test_physionet_schema():
    s = physionet2012_schema()
    assert len(s) == 37 and s.static_names == ["Age", "Gender", "Height", "ICUType", "Weight"]
    assert s.variables[s.index("GCS")].kind is Kind.ORDINAL
    assert s.variables[s.index("MechVent")].kind is Kind.BINARY
    assert (s.lows < s.highs).all()
    assert ((s.normals >= s.lows) & (s.normals <= s.highs)).all()


def test_round_to_precision():
    out = round_to_precision(np.array([7.4049, 36.66, 86.4]), np.array([2, 1, 0]))
    np.testing.assert_allclose(out, [7.40, 36.7, 86.0])


def test_valid_ranges_sit_at_recorded_precision():
    """Clipping a poisoned value to the range must not leave the data's precision."""
    for s in (mimic3_schema(), physionet2012_schema()):
        for bound in (s.lows, s.highs):
            np.testing.assert_allclose(round_to_precision(bound, s.precisions), bound, atol=1e-12)
