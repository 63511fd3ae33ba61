"""Examples of the plugin: a scripted Scipion workflow (:mod:`.scripted_workflow`) that the
demo (:mod:`isonet2scipion.demo`) runs too."""
