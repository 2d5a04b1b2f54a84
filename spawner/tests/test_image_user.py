"""Who a server of an image made elsewhere runs as: every spelling of root is root."""

import pytest

from gpudockerspawner.image_user import resolved_uid

PASSWD = """root:x:0:0:root:/root:/bin/bash
toor:x:0:0:another name for root:/root:/bin/sh
jovyan:x:1000:100::/home/jovyan:/bin/bash
broken:x:
"""


@pytest.mark.parametrize("user, uid", [
    ("", 0), ("root", 0), ("0", 0), ("00", 0), ("0000:0", 0), ("root:users", 0), ("toor", 0), ("toor:100", 0),
    ("jovyan", 1000), ("jovyan:100", 1000), ("1000", 1000), ("1000:100", 1000), (" 0 ", 0),
])
def test_a_user_resolves_to_its_uid_in_the_images_own_passwd(user, uid):
    assert resolved_uid(user, PASSWD) == uid


@pytest.mark.parametrize("user", ["nobody-here", "broken", "-1"])
def test_a_name_the_image_lacks_resolves_to_nothing(user):
    assert resolved_uid(user, PASSWD) is None
    assert resolved_uid(user, None) is None


def test_an_image_without_passwd_runs_names_nowhere_but_numbers_as_they_are():
    assert resolved_uid("4242", None) == 4242 and resolved_uid("", None) == 0
