from seqcopy.ui.frames import parse_run_ids


def test_run_ids_from_a_shared_link():
    assert parse_run_ids("3, 7,,12") == ([3, 7, 12], [])
    assert parse_run_ids("") == ([], [])


def test_what_is_not_a_run_id_is_reported_not_fatal():
    assert parse_run_ids("4,²,x,-1,5") == ([4, 5], ["²", "x", "-1"])
