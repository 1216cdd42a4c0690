package linktest

import (
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
)

func TestDirectKeepsTheContract(t *testing.T) {
	Contract(t, func(t *testing.T, card *ContractCard) link.Link {
		return link.NewDirect(card, "direct", []byte{0x3B, 0x00})
	})
}
