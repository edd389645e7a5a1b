"""What each command does, one module per command family; the scripts parse arguments and
call one function here (``browse_plans.py`` -> ``catalog.browse_plans``)."""
