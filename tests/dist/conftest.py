def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds (builds a virtual environment); still part of the default run")
