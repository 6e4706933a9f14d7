"""The transcript normalizer the interop comparisons rest on."""

from __future__ import annotations

from interop_tools import Normalizer, Server


def test_a_known_id_written_in_hex_with_digits_only_keeps_its_name():
    cluster = 0x1234567890123456  # its hex has no letter, so it also reads as a decimal number
    member = 0x8E9E05C52164694D
    normalize = Normalizer(Server(), [member], cluster)
    assert normalize("Member 8e9e05c52164694d added to cluster 1234567890123456\n") == \
        "Member <MEMBER0> added to cluster <CLUSTER>\n"
    assert normalize('{"cluster_id":1311768467284833366}') == '{"cluster_id":<CLUSTER>}'


def test_unknown_ids_are_named_in_order_of_appearance():
    normalize = Normalizer(Server())
    assert normalize("lease 694d77aa9e5d0b10 granted, then 694d77aa9e5d0b11; again 694d77aa9e5d0b10") == \
        "lease <ID1> granted, then <ID2>; again <ID1>"
