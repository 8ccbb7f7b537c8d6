"""MongoDB persistence. One class, :class:`api.store.mongo.MongoStore`, satisfies the domain ports."""
