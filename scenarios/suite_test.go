package scenarios

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reports"
)

var (
	dutFlag   = flag.String("dut", "ref", "device under test: ref, pcsc[:READER], serial:PATH, usb:VID:PID, usb-emu, sd:DIR, replay:FILE, pcsc-emu, serial-emu, sd-emu")
	reportDir = flag.String("report-dir", "", "write the certification report (HTML, JUnit, signed manifest) here")
)

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	Define(&DUTDriver{Specs: []string{*dutFlag}})
	suiteConfig, reporterConfig := GinkgoConfiguration()
	if *reportDir != "" {
		if err := os.MkdirAll(*reportDir, 0o755); err != nil {
			t.Fatal(err)
		}
		reporterConfig.JSONReport = filepath.Join(*reportDir, "ginkgo.json")
	}
	RunSpecs(t, "spdlab conformance on "+*dutFlag, suiteConfig, reporterConfig)
}

var _ = ReportAfterSuite("certification report", func(r Report) {
	if *reportDir == "" {
		return
	}
	lab, key, err := reports.OpenLab(reports.DefaultLabKeyPath())
	if errors.Is(err, reports.ErrNoLabKey) {
		lab, key, err = reports.EphemeralLab()
	}
	Expect(err).NotTo(HaveOccurred())
	c, err := reports.Write(*reportDir, reports.RunInfo{DUT: *dutFlag, Lab: lab}, []Report{r}, key)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Println(c.Summary())
})
