"""Set-up of the plugin tests: a basic hosts.conf in the private SCIPION_HOME (the lead's
tests/conftest.py sets the environment; projects need a hosts configuration to launch)."""
import os

import pyworkflow as pw
from pyworkflow.protocol.hosts import HostConfig

if not os.path.exists(pw.Config.SCIPION_HOSTS):
    os.makedirs(os.path.dirname(pw.Config.SCIPION_HOSTS), exist_ok=True)
    HostConfig.writeBasic(pw.Config.SCIPION_HOSTS)
