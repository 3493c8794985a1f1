"""CI of the ML system (level 2): the test battery `esteira ci` runs on a project's code."""
