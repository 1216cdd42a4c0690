package scenarios

import . "github.com/onsi/ginkgo/v2"

// Define registers every conformance case against d. Call it once, from
// the suite's test main (or `spdlab certify`), before RunSpecs.
func Define(d Driver) {
	BeforeEach(func() {
		beginClaims()
		needCitedFeatures(d)
	})
	AfterEach(endClaims)
	defineApplication(d)
	defineLifeCycle(d)
	defineVerification(d)
	definePayments(d)
	defineLedger(d)
	defineTokens(d)
	defineTransfers(d)
	defineMedia(d)
	defineParsing(d)
	defineDeviceMedia(d)
	defineHostAssertions(d)
	defineExchange(d)
	defineGetDataList(d)
	defineClaims(d)
	defineESIM(d)
	defineOptical(d)
	defineInvariants(d)
	defineService(d)
	defineVectors(d)
	defineConformance(d)
}
