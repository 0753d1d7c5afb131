@testable import LBCore
import Testing

/// nginx's `worker_connections` arithmetic (ngx_get_connection / ngx_drain_connections).
@Suite struct ConnectionBudgetTests {
    @Test func idleConnectionsAreReusedOnlyWhenASixteenthOrLessIsFree() {
        let b = ConnectionBudget(limit: 1024)
        #expect(b.hasSlack(inUse: 959))   // 65 free
        #expect(!b.hasSlack(inUse: 960))  // 64 free
        #expect(!b.hasSlack(inUse: 1024))
        let small = ConnectionBudget(limit: 8) // 8 / 16 == 0: only a full worker reuses
        #expect(small.hasSlack(inUse: 7))
        #expect(!small.hasSlack(inUse: 8))
    }

    @Test(arguments: [(0, 0), (1, 1), (7, 1), (16, 2), (200, 25), (256, 32), (10_000, 32)])
    func anEighthOfTheIdleConnectionsBetweenOneAndThirtyTwo(reusable: Int, closed: Int) {
        #expect(ConnectionBudget(limit: 64).reuseCount(reusable: reusable) == closed)
    }

    @Test func aLineIsDueOncePerSecond() {
        var once = OncePerSecond()
        let due = [5_000, 5_999, 6_000, 6_500, 9_000].map { once.due(nowMillis: $0) }
        #expect(due == [true, false, true, false, true])
    }
}
