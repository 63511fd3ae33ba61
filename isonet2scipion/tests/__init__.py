"""Tests of the Scipion plugin that Scipion's own runner finds
(``scipion3 test isonet2scipion.tests.test_upstream_chain``); the README's test command runs
them too."""
