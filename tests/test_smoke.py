from tests.world import new_org


async def test_owner_logs_in_and_sees_themself(server):
    org = await new_org(server)
    data = await org.gql("{ me { id role } organization { name } }")
    assert data == {"me": {"id": org.owner.id, "role": "OWNER"}, "organization": {"name": "Acme"}}
