"""
Credential masking (SPEC §9): what an operator pastes into a bug report must not leak a
provider login.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.redact import MASK, Redactor, secrets_in_url

PLAYLIST = "http://provider.example/get.php?username=alice77&password=hunter22&type=m3u_plus"


class SecretsInUrlTests(SynchronousTestCase):
    def test_query_userinfo_and_xtream_path(self) -> None:
        self.assertEqual(secrets_in_url(PLAYLIST), {"alice77", "hunter22"})
        self.assertEqual(secrets_in_url("http://bob:pw123@h/x"), {"bob", "pw123"})
        self.assertEqual(secrets_in_url("http://h/live/carol/s3cret/1.ts"), {"carol", "s3cret"})

    def test_short_values_are_not_treated_as_secrets(self) -> None:
        """Masking "1" everywhere would garble every number in a log line."""
        self.assertEqual(secrets_in_url("http://h/get.php?username=ab&password=1"), set())


class MaskTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.redactor = Redactor.for_urls([PLAYLIST])

    def test_spec_examples(self) -> None:
        self.assertEqual(
            self.redactor.mask("http://provider.example/live/alice77/hunter22/1234.ts"),
            "http://provider.example/live/***/***/1234.ts",
        )
        self.assertEqual(
            self.redactor.mask(PLAYLIST),
            "http://provider.example/get.php?username=***&password=***&type=m3u_plus",
        )
        self.assertEqual(self.redactor.mask("http://u:p@h/a.ts"), "http://***@h/a.ts")

    def test_every_credential_parameter(self) -> None:
        for name in ("user", "pass", "token", "key", "auth", "PASSWORD"):
            self.assertEqual(Redactor().mask(f"http://h/x?a=1&{name}=zz9&b=2"),
                             f"http://h/x?a=1&{name}=***&b=2")

    def test_literal_secret_anywhere(self) -> None:
        """A provider may echo the login in a path or an error page."""
        masked = self.redactor.mask("upstream said: user alice77 expired (hunter22)")
        self.assertNotIn("alice77", masked)
        self.assertNotIn("hunter22", masked)

    def test_a_literal_secret_is_masked_as_a_word_not_inside_one(self) -> None:
        """A username like "demo" or "nhl" must not mangle channel ids in every log line."""
        redactor = Redactor.for_urls(["http://h/get.php?username=demo&password=hunter22"])
        self.assertEqual(redactor.mask("demo_sports_1 switching; user demo, pass hunter22."),
                         "demo_sports_1 switching; user ***, pass ***.")
        self.assertEqual(redactor.mask("http://h/x/demo/hunter22/1.ts"), "http://h/x/***/***/1.ts")

    def test_punctuation_after_a_url_survives(self) -> None:
        self.assertEqual(
            Redactor().mask("fetch of http://h/x?token=abc. failed: (http://h/y?key=k1), done"),
            "fetch of http://h/x?token=***. failed: (http://h/y?key=***), done",
        )

    def test_masking_twice_changes_nothing(self) -> None:
        once = self.redactor.mask(PLAYLIST + ": HTTP 404")
        self.assertEqual(self.redactor.mask(once), once)
        self.assertTrue(once.endswith(": HTTP 404"))

    @given(
        user=st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=3, max_size=12),
        password=st.text("abcdefghijklmnopqrstuvwxyzABCDEF0123456789!$*()-_", min_size=3,
                         max_size=16),
        context=st.text(max_size=40),
    )
    def test_no_login_survives(self, user: str, password: str, context: str) -> None:
        url = f"http://p.example/get.php?username={user}&password={password}&type=m3u"
        redactor = Redactor.for_urls([url])
        stream = f"http://p.example/live/{user}/{password}/7.ts"
        for text in (url, stream, f"{context} {url} {context}", f"{stream}: failed"):
            masked = redactor.mask(text)
            self.assertNotIn(f"={user}", masked)
            self.assertNotIn(f"/{password}/", masked)
            self.assertIn(MASK, masked)
            self.assertEqual(redactor.mask(masked), masked)


class ViewerTests(SynchronousTestCase):
    """Viewer accounts (SPEC §15): passwords masked everywhere, the account's name kept readable."""

    def setUp(self) -> None:
        self.redactor = Redactor.for_urls([PLAYLIST], [("alice", "Wonder-land9"), ("bob", "pw")])

    def test_access_log_forms(self) -> None:
        mask = self.redactor.mask
        self.assertEqual(mask('"GET /live/alice/Wonder-land9/101.ts HTTP/1.1" 200'),
                         '"GET /live/alice/***/101.ts HTTP/1.1" 200')
        self.assertEqual(mask("GET /alice/Wonder-land9/101 HTTP/1.1"), "GET /alice/***/101 HTTP/1.1")
        self.assertEqual(mask("/player_api.php?username=alice&password=Wonder-land9&action=x"),
                         "/player_api.php?username=alice&password=***&action=x")
        self.assertEqual(mask("/live/alice/Wonder-land9/101.m3u8"), "/live/alice/***/101.m3u8")

    def test_a_short_password_is_masked_in_urls(self) -> None:
        """Too short to mask as a word anywhere ("pw"), but never left in a URL form."""
        mask = self.redactor.mask
        self.assertEqual(mask("/live/bob/pw/101.ts /bob/pw/7 ?username=bob&password=pw"),
                         "/live/bob/***/101.ts /bob/***/7 ?username=bob&password=***")

    def test_password_as_a_word_anywhere(self) -> None:
        self.assertEqual(self.redactor.mask("said Wonder-land9 twice"), "said *** twice")

    def test_unknown_names_and_provider_paths_stay_masked(self) -> None:
        mask = self.redactor.mask
        self.assertEqual(mask("/live/mallory/guess/101.ts ?username=mallory&password=guess"),
                         "/live/***/***/101.ts ?username=***&password=***")
        self.assertEqual(mask("http://provider.example/live/alice77/hunter22/1.ts"),
                         "http://provider.example/live/***/***/1.ts")

    def test_masking_twice_changes_nothing(self) -> None:
        once = self.redactor.mask("/live/alice/Wonder-land9/101.ts?username=alice&password=Wonder-land9")
        self.assertEqual(self.redactor.mask(once), once)
        self.assertNotIn("Wonder-land9", once)
