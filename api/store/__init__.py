"""MongoDB persistence: the only package that names a collection or writes a MongoDB operator.

One module per collection family; :class:`api.store.mongo.MongoStore` holds
conversations, messages and customers, reaches the other repositories, and is
the one object that satisfies the domain's store ports. Where nx-27017 differs
from MongoDB (``docs/embedded-server.md``), the workaround is commented beside
the query it shapes.
"""
