"""AWS components of ccp: `Site` and the parts it is made of (type tokens `ccp:aws:<Name>`)."""
