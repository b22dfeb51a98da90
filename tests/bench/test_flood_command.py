"""The flood's command line reaches it as written, whatever the password (bench/flood.py)."""

from bench import flood


def test_a_password_beginning_with_a_dash_reaches_the_flood():
    # secrets.token_urlsafe gives one in 64 such passwords; a run's flood failed on one.
    argv = flood.command(5222, "-Xy_z", "room@conference.localhost", "localhost", 2, 20.0)[3:]
    args = flood.parse(argv)
    assert args.password == "-Xy_z"
    assert args.port == 5222 and args.room == "room@conference.localhost" and args.seconds == 20.0
    assert args.observer == "observer@localhost"
    assert args.senders == ["sender0@localhost", "sender1@localhost"]
